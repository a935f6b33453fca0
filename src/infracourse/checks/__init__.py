"""One module a lab: labNN.py holds the checks of labs/NN_*.ipynb."""
