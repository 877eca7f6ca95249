"""What a run leaves behind: the exact summary, its CSV, and the self-contained HTML report."""
