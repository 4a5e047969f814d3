"""Logic shared by the stages (params, image decoding, file output, prepared tensors)."""
