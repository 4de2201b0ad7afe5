import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// base "./": the built files work from any folder of any static host.
export default defineConfig({
  base: "./",
  plugins: [react()],
  server: { host: "127.0.0.1" },
  preview: { host: "127.0.0.1" },
});
