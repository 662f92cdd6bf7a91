"""Build tools run from the checkout (python tools/NAME.py); not part of the installed bot."""
