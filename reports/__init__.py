"""Aggregate run folders into comparison reports (pandas, scipy, jinja2, Babel; charts are plain SVG)."""
