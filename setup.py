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
# ONNX export (miziha.export.to_onnx) and running the files.
ONNX = ["paddle2onnx>=2.1", "onnxruntime>=1.17"]

setup(
    name="miziha",
    version=VERSION,
    description="Token mixers (Swin V1/V2, CSWin, Pale, axial, CycleMLP, AS-MLP) as drop-in "
                "nn.Conv2D replacements for PaddlePaddle, and the official networks built "
                "from them",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["miziha", "miziha.*"]),
    python_requires=">=3.9",
    # Paddle is an extra, as in Paddle's own libraries: pick the CPU or the GPU build.
    # safetensors: timm's hub files (tiny, no dependencies); read through its NumPy API.
    install_requires=["numpy", "safetensors>=0.3"],
    extras_require={
        "cpu": ["paddlepaddle>=3.0"],
        "gpu": ["paddlepaddle-gpu>=3.0"],
        "examples": EXAMPLES,
        "onnx": ONNX,
        "test": ["pytest>=7"] + EXAMPLES + ONNX,  # the tests run the examples and exports
    },
    license="Apache-2.0",
    classifiers=["Programming Language :: Python :: 3",
                 "Topic :: Scientific/Engineering :: Artificial Intelligence"],
)
