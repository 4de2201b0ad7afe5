import { useEffect, useState } from "react";
import type { Session } from "@supabase/supabase-js";
import { supabase } from "./config.ts";
import { POLL_MS, startLive, useLiveMode } from "./live.ts";
import { ErrorBox } from "./ui.tsx";
import { SignIn } from "./pages/SignIn.tsx";
import { Assistants } from "./pages/Assistants.tsx";
import { Campaigns } from "./pages/Campaigns.tsx";
import { CampaignForm } from "./pages/CampaignForm.tsx";
import { CampaignPage } from "./pages/CampaignPage.tsx";
import { Calls } from "./pages/Calls.tsx";
import { CallPage } from "./pages/CallPage.tsx";
import { Health } from "./pages/Health.tsx";
import { DoNotCall } from "./pages/DoNotCall.tsx";
import { Webhooks } from "./pages/Webhooks.tsx";

/** The route is the hash (`#/campaigns/<id>?...`), so any static host serves every screen. */
function useRoute(): [string[], URLSearchParams] {
  const read = () => {
    const [path, query] = location.hash.replace(/^#/, "").split("?");
    return [path.split("/").filter(Boolean), new URLSearchParams(query ?? "")] as [
      string[],
      URLSearchParams,
    ];
  };
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const on = () => setRoute(read());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return route;
}

const NAV = [
  ["assistants", "Assistants & numbers"],
  ["campaigns", "Campaigns"],
  ["calls", "Calls"],
  ["health", "Number health"],
  ["dnc", "Do not call"],
  ["webhooks", "Webhooks"],
] as const;

export function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    supabase.auth.getSession().then(({ data, error }) => {
      if (error) setError(error);
      setSession(data.session);
    });
    const { data } = supabase.auth.onAuthStateChange((_event, s) => setSession(s));
    return () => data.subscription.unsubscribe();
  }, []);
  if (session === undefined) {
    return (
      <main className="page">
        <p>Loading…</p>
        <ErrorBox error={error} />
      </main>
    );
  }
  if (!session) return <SignIn />;
  return <Signed session={session} />;
}

function Signed({ session }: { session: Session }) {
  const [path, query] = useRoute();
  const live = useLiveMode();
  useEffect(() => startLive(), []);
  const section = path[0] ?? "campaigns";
  let page;
  if (section === "assistants") page = <Assistants />;
  else if (section === "campaigns" && path[1] === "new") page = <CampaignForm />;
  else if (section === "campaigns" && path[1] && path[2] === "edit") {
    page = <CampaignForm id={path[1]} />;
  } else if (section === "campaigns" && path[1]) page = <CampaignPage id={path[1]} />;
  else if (section === "campaigns") page = <Campaigns />;
  else if (section === "calls" && path[1]) page = <CallPage id={path[1]} />;
  else if (section === "calls") page = <Calls query={query} />;
  else if (section === "health") page = <Health />;
  else if (section === "dnc") page = <DoNotCall />;
  else if (section === "webhooks") page = <Webhooks />;
  else page = <p className="error" role="alert">No such page: #{path.join("/")}</p>;
  return (
    <>
      <header className="top">
        <a className="brand" href="#/campaigns">voice-lines</a>
        <nav aria-label="Sections">
          {NAV.map(([key, label]) => (
            <a key={key} href={`#/${key}`} aria-current={section === key ? "page" : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <span className="who">
          <span
            className="live"
            data-testid="live-mode"
            title={live.kind === "polling" ? live.why : ""}
          >
            {live.kind === "realtime"
              ? "Live: Realtime"
              : live.kind === "polling"
              ? `Live: polling every ${POLL_MS / 1000} s`
              : "Live: connecting…"}
          </span>
          <span className="email">{session.user.email ?? "anonymous"}</span>
          <button type="button" onClick={() => supabase.auth.signOut()}>Sign out</button>
        </span>
      </header>
      <main className="page">{page}</main>
    </>
  );
}
