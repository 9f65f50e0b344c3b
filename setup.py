import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
#: The version is written once, in miziha/__init__.py.
VERSION = re.search(r'^__version__ = "([^"]+)"',
                    (HERE / "miziha" / "__init__.py").read_text(encoding="utf-8"), re.M).group(1)

# What the comparison examples need: VisualDL logs, plots, the offline digits, image files,
# the leaderboard's photographs (shipped inside scikit-image).
EXAMPLES = ["visualdl>=2.5", "matplotlib>=3.5", "scikit-learn>=1.0", "Pillow",
            "scikit-image>=0.19"]

setup(
    name="miziha",
    version=VERSION,
    description="Swin Transformer window attention as a drop-in nn.Conv2D replacement "
                "for PaddlePaddle",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["miziha", "miziha.*"]),
    python_requires=">=3.9",
    # Paddle is an extra, as in Paddle's own libraries: pick the CPU or the GPU build.
    install_requires=["numpy"],
    extras_require={
        "cpu": ["paddlepaddle>=3.0"],
        "gpu": ["paddlepaddle-gpu>=3.0"],
        "examples": EXAMPLES,
        "test": ["pytest>=7"] + EXAMPLES,  # the tests run the examples
    },
    license="Apache-2.0",
    classifiers=["Programming Language :: Python :: 3",
                 "Topic :: Scientific/Engineering :: Artificial Intelligence"],
)
