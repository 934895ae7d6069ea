"""Training RestorationNet, the generator's network: data, the face critic, training and export."""
