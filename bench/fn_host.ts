// Serves one function's handler from this (fresh) process: `fn_host.ts <name> <port>`.
const [name, port] = Deno.args;
const { platformDeps } = await import("../supabase/functions/_shared/deps.ts");
const { handler } = await import(`../supabase/functions/${name}/handler.ts`);
Deno.serve({ hostname: "127.0.0.1", port: Number(port), onListen() {} }, handler(platformDeps));
