import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { connect, loadConfig } from "./config.ts";
import { App } from "./App.tsx";
import "./styles.css";

const root = createRoot(document.getElementById("root")!);
loadConfig().then((c) => {
  connect(c);
  root.render(
    <StrictMode>
      <App />
    </StrictMode>,
  );
}).catch((e) => {
  root.render(
    <main className="page">
      <h1>voice-lines console</h1>
      <p className="error" role="alert">{e instanceof Error ? e.message : String(e)}</p>
    </main>,
  );
});
