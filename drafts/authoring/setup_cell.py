# %% tags=["remove-output"]
# Setup for Colab or any fresh environment: installs the course's `helpers` package (and what it
# needs) only when it is missing. An installed torch >= 2.4 is kept, never reinstalled.
import importlib.util, os, subprocess, sys

REPO_URL = os.environ.get("COURSE_REPO_URL", "https://github.com/hands-on-pytorch/course")
if importlib.util.find_spec("helpers") is None:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", f"git+{REPO_URL}"])
