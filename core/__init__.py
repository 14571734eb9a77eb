"""Shared primitives below every app: plain Python, no Django models, no import of any Docent app.

- `core.text`: sentence splitting (documents and answers) and the tokenizer-free token estimate;
- `core.markers`: the citation-marker grammar ([1], [1, 2], 【1】, ［1］);
- `core.lazy`: lazy process-wide singletons (`@process_singleton`).
"""
