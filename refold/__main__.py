"""`python -m refold`: the same as the `refold` command."""

from refold.cli import main

main()
