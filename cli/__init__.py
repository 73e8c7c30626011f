"""FlipKD: flipped knowledge distillation for text matching (``flipkd.models``, ``flipkd.training``,
``flipkd.service``; the ``flipkd`` command is :mod:`flipkd.main`)."""
