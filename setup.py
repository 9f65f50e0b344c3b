from pathlib import Path

from setuptools import find_packages, setup

# What the comparison examples need: VisualDL logs, plots, the offline digits, image files.
EXAMPLES = ["visualdl>=2.5", "matplotlib>=3.5", "scikit-learn>=1.0", "Pillow"]

setup(
    name="miziha",
    version="0.1.0",
    description="Swin Transformer window attention as a drop-in nn.Conv2D replacement "
                "for PaddlePaddle",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
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
