"""What explain needs: Grad-CAM and SHAP maps of a trained model and their figures.
Imports only core and models."""
