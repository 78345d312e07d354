"""One function per recipe: take a composed config, do the work, return the results row."""
