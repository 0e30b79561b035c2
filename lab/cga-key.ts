/**
 * Host A's CGA key in the lab (RFC 5533 §5.15.4–5): a 2048-bit RSA key made
 * once and kept here, so A's HBA/CGA-compatible set (hba.ts) — and with it A's
 * addresses — are the same on every run. A lab key, public in this source: it
 * protects nothing outside the lab's namespaces. The daemon reads it from a
 * file (`cga.key`), which the lab writes beside A's config, mode 0600.
 */
import { writeFileSync } from 'node:fs';

export const LAB_CGA_KEY_A = `-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQDF1OsMK3K2XPoW
to2qlrzApXbHnmlD271RJ0nkLPfH8vvikloqJfNERBReKsvNoE6OI4W7ee8xpLuy
TOWtVzWQizHapHnyW8HSEbHLNt83BUsVAu92FyBtgsYI3bFjE+h82zIsX4UoxWqX
vRkteZaEm6aQi0D5rdNYHRRi1unTnwiUrJ3ZgDfrmeNSMnK7dsVYCBGoQHIsFj/C
upDpdKcBZNalGO9Nl0lwI2vOJdZlQIq0gkJkIBGXtig/6zF0MolZgPqLtNdKmX4W
fouZfCL922By/pISzMfN3r7Joh3sXx23X53LiligezOSpAlDyIZMa2IF2vQCQ7XN
LMatl1BDAgMBAAECggEARO3HSdG3oc+qeZB4ssfbk1nzlWDd931QLL7+MWjzmnDQ
j6SDkuzvIkmAOUE7CnXA+ShqV6SIEWl+1oSRgACDUs4U/EPTk3yh/yIYKyB+zKpk
+zivG5u6Oj3W507rGATfO+WZyTks6cRDPARwidYz+hdLhVBnvrbwjOJw8HFGPmut
ZQub2qdmN1F7vFN2Fd//vaBaZiASi6pDPP7Pju05spcSJNJYhB9qChMU37LkJAN1
fJhRSSc/NWkESUlhkeR6KeaAyzZKKqPQ39AOrTqJaf91qz1Ml6hC6eRAQDigwHbC
Wu6jYqWFSNNLFZpRW6shOi/fVcWAIddclkvncWpZwQKBgQDtMR/i22NlJmqSkESX
ls6qAnNUpd/qFIb0LzR7d4tuf/n0I4FgG1VTE6uiOKwhGExONgoIZ0zXrsxktE6l
1fGqBxL+a9Ro7GNY4A/AG1AWb54h8h3a7+ag8bEdtn3hEu6uLNTiH4KSnu+kEoS0
qWQjPwZIhfRh3v2Wijq89NVsAwKBgQDVhM1Erzp4+PMq0kAS285S+q4owmxz5H7M
lc3/LsJIfTGK/8dcF0Gp1wVRKBo96LQGUkQ1VGfo0XCug/mQxx96vMD+zTMO7yva
eOvIMv5cuGIZSqIabY+fqeOUB+0bfVy9ZQHY+BIcYjwGPQwkovOzHOYVSFn6o2Zt
fxZo46L2wQKBgCdNC3aAWYDKE8CDLQpdD5M14rw029wiWJYfODf4/95oUBc2xtoQ
zVt9l+PCNisppoMTCyiHTUEzkmRhR+LMh0Vf9LK5VTGpcXCpd5KiM+vzxKTlRDMh
qvoh8fH1afggNfIgNYneJLl8okJyWxDAPHpml/juUSbiVuxZrQ/gFXjXAoGAS0/I
R023RiwpORVn3D8Di2k4PNA3CLmzr923BycrB/6AlxKY8vaRBqL9ER8gAm4t8Xza
6iSXchtNr4CFaneRtu0U9crTE5Vw1mKIZ9j0tyeiEmGsw72ZRyvZRcF19JhHOdaC
zFDTsodDvL+TpOiFJMwwq5kVg75WxpBpCx4fwQECgYAni81bTSk4yWqPddg2lN+W
xk+al/Nvp9Zkf4PB12WcN0HbOfpTKnq0x8PtLyc5vy3BwT0ii+gVbJpSKrA2Ux7q
iW0L5mWC1W0j4pO58kutoBijFJe3N++OGLvpAsmuuPV8nHQRiN1nLrm/e82mvf5V
jL2arh1sDk6smrzHBFWPdg==
-----END PRIVATE KEY-----
`;

/** Write A's key file (for its daemon's `cga.key`). */
export function writeLabCgaKey(file: string): void {
  writeFileSync(file, LAB_CGA_KEY_A, { mode: 0o600 });
}
