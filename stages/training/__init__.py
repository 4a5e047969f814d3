"""What train and features need: training settings and compiling, tf.data input, distribution,
frozen-base features, nested subsets, test-set inference. Imports only core and models."""
