from setuptools import find_packages, setup


def version():
    with open('mmtinyvim/__init__.py') as f:
        for line in f:
            if line.startswith('__version__'):
                return line.split('=')[1].strip().strip("'")
    raise RuntimeError('no __version__ in mmtinyvim/__init__.py')


setup(
    name='mmtinyvim',
    version=version(),
    description='TinyViM and MobileMamba backbones for mmdet, mmseg and '
    'mmpretrain',
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmtinyvim', 'mmtinyvim.*']),
    python_requires='>=3.9',
    install_requires=[
        'torch>=2.0',
        'torchvision',
        'mmengine==0.10.7',
        # mmdet 3.3.0 and mmseg 1.2.2 refuse mmcv >= 2.2; see
        # scripts/install_mmcv.sh for modern torch
        'mmcv>=2.0.0,<2.2.0',
        'mmdet==3.3.0',
        'mmsegmentation==1.2.2',
        'mmpretrain==1.2.0',
        'ftfy',  # imported by mmseg
        'regex',  # imported by mmseg
        # pkg_resources (gone from setuptools 81) is needed by `mmdet::` config
        # bases; torch 2.14 needs setuptools >= 77
        'setuptools<81',
    ],
    extras_require={
        'gpu': ['mamba-ssm>=2.2'],
        'onnx': ['onnx', 'onnxruntime'],
        'tests': ['pytest', 'onnx', 'onnxruntime'],
    },
    license='Apache-2.0',
)
