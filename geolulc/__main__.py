"""`python -m geolulc` runs the command line."""

from geolulc.cli import main

main()
