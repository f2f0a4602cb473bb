"""The commands of ``cryogen``, one module per command or family: plain functions whose
parameters are the command's options; ``cryogen.cli.app`` registers them."""
