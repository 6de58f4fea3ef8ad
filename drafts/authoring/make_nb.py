"""Authoring tool (not committed): percent-format .py -> executed .ipynb in notebooks/."""
import sys, subprocess, pathlib, jupytext, nbformat
src = pathlib.Path(sys.argv[1]); out = pathlib.Path("/work/main/notebooks") / (src.stem + ".ipynb")
setup = pathlib.Path("/tmp/nbsrc/setup_cell.py").read_text()
text = src.read_text().replace("# %%\n# SETUP\n", setup, 1)
nb = jupytext.reads(text, fmt="py:percent")
nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
               "language_info": {"name": "python"}}
for c in nb.cells:
    c.metadata.pop("lines_to_next_cell", None)
    if c.cell_type == "code":
        c.source = c.source.rstrip("\n")
nbformat.write(nb, out)
if "--no-exec" not in sys.argv:
    r = subprocess.run([sys.executable, "-m", "jupyter", "execute", "--inplace",
str(out)], cwd="/work/main/notebooks")
    sys.exit(r.returncode)
