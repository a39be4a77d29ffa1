"""Dataset preparation: face landmarks, head pose and crops for EG3D labels; synthetic heads."""
