"""Every Dash component id of the web workbench, in one place.

Plain ids are strings. Pattern-matching ids (one per row, field or figure) are dicts built by the
functions at the bottom, so a callback and the layout that it serves can never disagree on a key.
"""

from __future__ import annotations

from typing import Any

from dash.dependencies import Wildcard

# Shell
URL = "url"
PAGE = "page-content"
PAGE_URL = "page-url"  # the URL whose page is shown (path + query)
NAV = "nav"

# Home
HOME_SUMMARY = "home-summary"

# Models
MODELS_TABLE = "models-table"
MODEL_NAME = "model-name"
MODEL_SPEC = "model-spec"
MODEL_ADD = "model-add"
MODEL_ADD_STATUS = "model-add-status"
MODEL_REPLACE = "model-replace"
MODEL_FACTS = "model-facts"
MODEL_RUN = "model-run"  # id of the model-add run the page waits for
MODEL_POLL = "model-poll"

# Prompt sets
PROMPTS_TABLE = "prompts-table"
PROMPTS_UPLOAD = "prompts-upload"
PROMPTS_UPLOAD_NAME = "prompts-upload-name"
PROMPTS_UPLOAD_STATUS = "prompts-upload-status"
PROMPTS_UPLOAD_ERRORS = "prompts-upload-errors"
PROMPTS_PREVIEW_SET = "prompts-preview-set"
PROMPTS_PREVIEW = "prompts-preview"
PROMPTS_UPLOAD_MODEL = "prompts-upload-model"
PROMPTS_IMPORT_RUN = "prompts-import-run"  # id of the prompts-import run the page waits for
PROMPTS_IMPORT_POLL = "prompts-import-poll"
PROMPTS_GEN_TASK = "prompts-gen-task"
PROMPTS_GEN_N = "prompts-gen-n"
PROMPTS_GEN_SEED = "prompts-gen-seed"
PROMPTS_GEN_MODEL = "prompts-gen-model"
PROMPTS_GEN_NAME = "prompts-gen-name"
PROMPTS_GEN_NEEDLE = "prompts-gen-needle"  # the needle task's fields, shown for needle only
PROMPTS_GEN_NEEDLE_LENGTH = "prompts-gen-needle-length"
PROMPTS_GEN_NEEDLE_QUERY = "prompts-gen-needle-query"
PROMPTS_GEN_CONTEXTS = "prompts-gen-contexts"
PROMPTS_GEN_DEPTHS = "prompts-gen-depths"
PROMPTS_GEN_SUBMIT = "prompts-gen-submit"
PROMPTS_GEN_STATUS = "prompts-gen-status"
PROMPTS_GEN_RESULT = "prompts-gen-result"
PROMPTS_GEN_RUN = "prompts-gen-run"
PROMPTS_GEN_POLL = "prompts-gen-poll"

# Launch
LAUNCH_KIND = "launch-kind"
LAUNCH_FORM = "launch-form"
LAUNCH_SUBMIT = "launch-submit"
LAUNCH_STATUS = "launch-status"

# Runs
RUNS_TABLE = "runs-table"
RUNS_INTERVAL = "runs-interval"
RUNS_ACTIVE = "runs-active"
RUNS_FILTER_KIND = "runs-filter-kind"
RUNS_FILTER_STATUS = "runs-filter-status"
RUNS_PAGE = "runs-page"
RUNS_PAGE_LABEL = "runs-page-label"
RUNS_PREV = "runs-prev"
RUNS_NEXT = "runs-next"
RUNS_ACTION_STATUS = "runs-action-status"
RUNS_CSV = "runs-csv"
RUNS_DOWNLOAD = "runs-download"
RUNS_REFRESH = "runs-refresh"
RUNS_CONFIRM_DELETE = "runs-confirm-delete"
RUNS_DELETE_TARGET = "runs-delete-target"
RUNS_SWEEPS = "runs-sweeps"

# Heads
HEADS_RUN = "heads-run"
HEADS_METRIC = "heads-metric"
HEADS_HEATMAP = "heads-heatmap"
HEADS_SELECTED = "heads-selected"
HEADS_KEY = "heads-key"
HEADS_CLICK = "heads-click"  # {layer, head, t} of a click on the heatmap (assets/keys.js)
HEADS_PROMPT = "heads-prompt"
HEADS_DETAIL_TITLE = "heads-detail-title"
HEADS_PATTERN = "heads-pattern"
HEADS_PATTERN_BOX = "heads-pattern-box"  # holds the pattern graph, or a note before a head
HEADS_SCORES = "heads-scores"
HEADS_SAE = "heads-sae"
HEADS_POSITION = "heads-position"
HEADS_POSITION_BOX = "heads-position-box"  # holds the per-position graph, or a note
HEADS_POSITION_METRIC = "heads-position-metric"
HEADS_MESSAGE = "heads-message"
HEADS_HEAD_FIGURES = "heads-head-figures"  # a taxonomy run's figures of the selected head
HEADS_RUN_FIGURES = "heads-run-figures"  # a taxonomy run's run-level figures, below the grid

# Circuits
CIRCUITS_RUNS = "circuits-runs"
CIRCUITS_MODE = "circuits-mode"
CIRCUITS_TOPK = "circuits-topk"
CIRCUITS_THRESHOLD = "circuits-threshold"
CIRCUITS_GRAPHS = "circuits-graphs"
CIRCUITS_FAITH = "circuits-faithfulness"
CIRCUITS_ROC = "circuits-roc"
CIRCUITS_EDGES = "circuits-edges"

# Circuit overlap
OVERLAP_RUNS = "overlap-runs"
OVERLAP_LEVEL = "overlap-level"
OVERLAP_MESSAGE = "overlap-message"
OVERLAP_GRID = "overlap-grid"
OVERLAP_MATRIX = "overlap-matrix"
OVERLAP_PAIRS = "overlap-pairs"
OVERLAP_EDGES = "overlap-edges"
OVERLAP_TRUTH = "overlap-truth"

# SAEs
SAE_RUN = "sae-run"
SAE_FEATURES = "sae-features"
SAE_FEATURE = "sae-feature"
SAE_SHARES = "sae-shares"
SAE_CONTEXTS = "sae-contexts"
SAE_DFA = "sae-dfa"
SAE_TRAINING = "sae-training"
SAE_MESSAGE = "sae-message"

# Compare
COMPARE_RUN_A = "compare-run-a"
COMPARE_RUN_B = "compare-run-b"
COMPARE_METRIC = "compare-metric"
COMPARE_SIDE = "compare-side"
COMPARE_DIFF = "compare-diff"
COMPARE_MESSAGE = "compare-message"
COMPARE_MOVERS = "compare-movers"
COMPARE_MOVERS_CHART = "compare-movers-chart"
COMPARE_MOVER_TITLE = "compare-mover-title"
COMPARE_PROMPT = "compare-prompt"
COMPARE_PATTERN_A = "compare-pattern-a"
COMPARE_PATTERN_B = "compare-pattern-b"
COMPARE_SWEEP_ID = "compare-sweep-id"
COMPARE_SWEEP_METRIC = "compare-sweep-metric"
COMPARE_SWEEP_GRID = "compare-sweep-grid"
COMPARE_SWEEP_TABLE = "compare-sweep-table"

# Explore
EXPLORE_TEXT = "explore-text"
EXPLORE_MODEL = "explore-model"
EXPLORE_NEXT = "explore-next"
EXPLORE_SET = "explore-set"  # a prompt set whose prompt fills the text box
EXPLORE_SET_INDEX = "explore-set-index"
EXPLORE_SUBMIT = "explore-submit"
EXPLORE_STATUS = "explore-status"
EXPLORE_RUN = "explore-run"  # id of the explore run the page shows or waits for
EXPLORE_POLL = "explore-poll"
EXPLORE_RESULT = "explore-result"  # holds the finished run's panels
EXPLORE_SHOWN = "explore-shown"  # id of the run whose panels are shown
EXPLORE_THUMBS = "explore-thumbs"
EXPLORE_FOCUS = "explore-focus"  # {layer, head, locked} from hover/click on a thumbnail
EXPLORE_TOKEN = "explore-token"  # {pos, t} of a click on a token (assets/explore.js)
EXPLORE_DIRECTION = "explore-direction"
EXPLORE_FOCUS_TITLE = "explore-focus-title"
EXPLORE_PATTERN = "explore-pattern"
EXPLORE_TOKENS = "explore-tokens"
EXPLORE_OVERLAY_HEADS = "explore-overlay-heads"
EXPLORE_OVERLAY = "explore-overlay"
EXPLORE_SCORES = "explore-scores"
EXPLORE_DLA_TARGET = "explore-dla-target"
EXPLORE_DLA = "explore-dla"
EXPLORE_LENS = "explore-lens"
EXPLORE_LENS_TABLE = "explore-lens-table"

# Figure export menus and table CSV downloads (pattern-matching ids).
EXPORT_MENU = "export-menu"  # headlab.ExportMenu: spec, format, preset, n_clicks, download
CSV_BUTTON = "csv-button"
CSV_DOWNLOAD = "csv-download"
RUN_CANCEL = "run-cancel"
RUN_DELETE = "run-delete"
LAUNCH_FIELD = "launch-field"
LAUNCH_FIELD_ERROR = "launch-field-error"
LAUNCH_UPLOAD = "launch-upload"


def export_id(figure: str | Wildcard) -> dict[str, Any]:
    """The id of a figure's export menu."""
    return {"type": EXPORT_MENU, "figure": figure}


def csv_id(part: str, table: str) -> dict[str, Any]:
    return {"type": part, "table": table}


def run_action_id(action: str, run_id: int | Wildcard) -> dict[str, Any]:
    return {"type": action, "run": run_id}


def launch_field_id(field: str | Wildcard) -> dict[str, Any]:
    return {"type": LAUNCH_FIELD, "field": field}


def launch_error_id(field: str | Wildcard) -> dict[str, Any]:
    return {"type": LAUNCH_FIELD_ERROR, "field": field}


def launch_upload_id(field: str | Wildcard) -> dict[str, Any]:
    """The upload button of a file field (``FieldSpec.server_file``) on the Launch form."""
    return {"type": LAUNCH_UPLOAD, "field": field}
