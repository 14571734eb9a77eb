"""Production static files: WhiteNoise's compressed, fingerprinted storage, with Docent's ES module imports
fingerprinted too."""

from __future__ import annotations

from django.contrib.staticfiles.storage import HashedFilesMixin
from whitenoise.storage import CompressedManifestStaticFilesStorage

# Django's rewriting of `import ... from "./x.js"` (what `support_js_module_import_aggregation` turns on for every
# script), applied to Docent's own scripts only: vendored libraries' sources name modules that are not shipped.
_MODULE_IMPORTS = vars(HashedFilesMixin)["_js_module_import_aggregation_patterns"][1]


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    """`import ... from "./chat_client.js"` inside a fingerprinted script of `docent/` or `widget/` names the
    fingerprinted module, so both are cached for as long as WhiteNoise caches fingerprinted files."""

    patterns = (
        *CompressedManifestStaticFilesStorage.patterns,
        ("docent/*.js", _MODULE_IMPORTS),
        ("widget/*.js", _MODULE_IMPORTS),
    )
