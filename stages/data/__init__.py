"""What balance, split and prepare need: listing, decoding and verifying images, labels, class
and image selection, split sizes. Used by those stages, preflight and planning; imports only core."""
