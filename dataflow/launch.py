"""The Flex Template's entry point (``FLEX_TEMPLATE_PYTHON_PY_FILE``): ``python -m pipeline`` with its options."""

import sys

from pipeline.main import main

if __name__ == "__main__":
    sys.exit(main())
