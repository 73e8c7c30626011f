"""``python -m flipkd``: the ``flipkd`` command."""

from flipkd.main import main

main()
