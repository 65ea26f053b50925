"""Ships grammar/fusion.lark inside the package (fusionlang/grammar/) for `pip install .`."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithGrammar(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "fusionlang" / "grammar"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(__file__).parent / "grammar" / "fusion.lark", target / "fusion.lark")


setup(cmdclass={"build_py": BuildWithGrammar})
