"""Rendering plans: rich text, JSON, DOT, SVG/PNG pictures and the schedule's Gantt chart.
Only this package and the CLI print."""
