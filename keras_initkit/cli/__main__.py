"""`python -m keras_initkit.cli`: the `keras-initkit` command."""

import sys

from keras_initkit.cli import main

sys.exit(main())
