"""The hand-in: the pipeline that makes what is missing, and the report."""
