// The cold-start yardstick: the smallest function Deno can serve.
Deno.serve(() => new Response(null, { status: 204 }));
