// The sign-in screen: the dashboard itself is public, its data is not. `mycel dashboard` opens a one-time link that
// signs the browser in; pasting the admin token into the form does the same (a plain form post, no script involved).

export function SignIn({ reason }: { reason: string }) {
  const note =
    reason === '#login-expired'
      ? 'That sign-in link was already used or has expired (links work once, for 5 minutes).'
      : reason === '#login-refused'
        ? 'That is not this control plane\'s admin token.'
        : 'This dashboard shows live data from the control plane, which needs you to sign in first.';
  return (
    <div class="signin">
      <div class="card signin-card">
        <h1>
          <span class="brand-mark big" aria-hidden="true" /> Sign in to Mycel
        </h1>
        <p class={reason.startsWith('#login-') ? 'warn-text' : ''}>{note}</p>
        <p>In the directory where the mesh runs (where <code>mycel up</code> made <code>.mycel/</code>), run:</p>
        <pre class="cmd">npx mycel dashboard</pre>
        <p class="muted">It prints a link that signs this browser in (and opens it when it can). The session only reads: changes still go through <code>mycel apply</code>.</p>
        <details>
          <summary>Or paste the admin token</summary>
          <form method="post" action="/login" class="token-form">
            <input type="password" name="token" placeholder="mycel-admin.… (from .mycel/admin-token)" autocomplete="off" required aria-label="admin token" />
            <button type="submit">Sign in</button>
          </form>
        </details>
      </div>
    </div>
  );
}
