"""`python -m keras_initkit`: the `keras-initkit` command."""

import sys

from keras_initkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
