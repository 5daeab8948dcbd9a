"""CPU benchmark suite of backprop against scikit-learn, PyTorch, JAX and plain NumPy.

Run ``python bench/run.py`` (or ``python -m bench``); see ``bench/README.md``.
"""
