"""ganaug: the study of Bissoto et al. (2021), 'GAN-based data augmentation and anonymization for
skin-lesion analysis: a critical review', as one Snakemake DAG.

    snakemake --cores all                                   # the default study on the toy dataset
    snakemake --cores all --configfile config/paper.yaml    # the paper's study
"""

from snakemake.utils import min_version

min_version("9.0")


# The default study's config only when no --configfile is given: Snakemake would otherwise deep-merge
# the two, and toy settings (e.g. classifier.model_kwargs) would leak into the paper's study.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/gan.smk"
include: "workflow/rules/pool.smk"
include: "workflow/rules/sampling.smk"
include: "workflow/rules/classifier.smk"
include: "workflow/rules/analysis.smk"


rule all:
    default_target: True
    input:
        analysis_files(),


rule prepare_data:
    input:
        "results/data/splits/train.csv",
        "results/data/splits/val.csv",
        expand("results/data/testsets/{test_set}.csv", test_set=TESTSETS),


rule gans:
    input:
        expand("results/gans/{gan}/selected.json", gan=all_gans()),
        gan_table_file(),


rule pools:
    input:
        expand("results/pools/{gan}/manifest.csv", gan=all_gans()),


rule trainsets:
    input:
        expand("results/trainsets/{experiment}/rep{rep}.csv", experiment=EXPERIMENT_IDS, rep=REPLICATES),


rule runs:
    input:
        prediction_files(),


rule figures:
    input:
        figure_files(),
