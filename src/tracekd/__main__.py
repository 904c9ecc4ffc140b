"""`python -m tracekd ...` (also the entry point for `accelerate launch -m tracekd`)."""

from tracekd.cli import main

if __name__ == "__main__":
    main()
