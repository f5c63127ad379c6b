"""To a microcontroller: integer-only inference, the C export, the quantization study."""
