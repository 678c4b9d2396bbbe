"""ganaug: GAN-based data augmentation and anonymization for skin-lesion classifiers.

The library behind the workflow. It never imports Snakemake: every stage is a plain function that
the thin scripts in workflow/scripts/ call.
"""

__version__ = "0.1.0"
