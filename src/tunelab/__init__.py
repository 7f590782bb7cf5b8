"""tunelab: adapt a pre-trained language model by transfer learning or full fine-tuning, compare the
strategies on your own data and hardware, and get a justified recommendation."""

__version__ = "0.1.0"
