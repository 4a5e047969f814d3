"""The bottom layer every stage and package uses: errors, atomic files, params, per-run paths
(layout), the prepared store and predictions, the quality metrics, the figure style, code deps.
It imports nothing else of ours (.importlinter)."""
