from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    """Measurement: benchmarks (`manage.py bench`) and evaluations (`eval_qa`, `eval_retrieval`).

    It sits above the product apps and drives them like any other caller; none of them imports it.
    It has no models, no URLs and no user-visible text."""

    name = "evaluation"
