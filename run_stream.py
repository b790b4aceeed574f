#!/usr/bin/env python3
"""Run the skelstream process graph: `python run_stream.py --help` explains every option."""
import sys

from stream.cli import main

if __name__ == "__main__":  # required: 'spawn' children re-import this file
    sys.exit(main())
