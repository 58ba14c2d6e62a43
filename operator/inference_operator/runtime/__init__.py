"""One operator process: its wiring, the watch feed and indices, served optional APIs, ghosts, leader
election, kopf settings, the memory profile, the lean start."""
