"""Analysis of results: statistics over seeds, diagnostics of trained networks, figures."""
