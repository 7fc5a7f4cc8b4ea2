"""What every pipeline's ``run()`` shares: strict options, the run itself, outputs, ``--help``."""
