import { platformDeps } from "../_shared/deps.ts";
import { handler } from "./handler.ts";

Deno.serve(handler(platformDeps));
