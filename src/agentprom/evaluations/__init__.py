"""OTel GenAI evaluation results (``gen_ai.evaluation.result``) from log records and span events."""
