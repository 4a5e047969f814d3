"""What report needs (compare_reports and review too): reading the runs, paired statistics,
tables, Markdown and figures. No TensorFlow: imports only core."""
