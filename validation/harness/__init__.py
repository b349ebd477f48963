"""Real-GPU measurement harness for the `pytorch-ref` stack.

See validation/harness/README.md for what is measured and the JSON schema,
and shared/reference/reference-stack.md for the stack itself.
"""

HARNESS_VERSION = "harness-0.1.0"
