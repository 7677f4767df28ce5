// Your model: a function that returns a tf.LayersModel ending in a softmax. Use the `tf` that
// fedsim exports, and name every layer (weights are matched across processes by layer name).
import { defineModel, tf } from "fedsim";

export const mlp = defineModel({
  name: "mlp",
  build({ inputShape, numClasses, seed }) {
    return tf.sequential({
      name: "mlp",
      layers: [
        tf.layers.dense({
          name: "hidden",
          inputShape,
          units: 32,
          activation: "relu",
          kernelInitializer: tf.initializers.glorotUniform({ seed }),
        }),
        tf.layers.dense({
          name: "out",
          units: numClasses,
          activation: "softmax",
          kernelInitializer: tf.initializers.glorotUniform({ seed }),
        }),
      ],
    });
  },
});
