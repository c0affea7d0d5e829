"""`python -m geolulc` runs the command line."""

from .cli import main

main()
