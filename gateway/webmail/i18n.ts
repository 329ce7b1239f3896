/** The texts of the WebMail mail and pages, per `webmail.language`. */
export type Language = 'en' | 'de';

const EN = {
  mailSubject: 'Secure message from {from}',
  mailIntro: '{from} has sent you a confidential message. It is in the attachment secure-message.html.',
  mailHow: 'Open the attachment in your web browser. At your first message you choose a password; afterwards you enter that password to read your messages.',
  mailWarn: 'We never ask for your password by mail. The message can be read until {expires}.',
  open: 'Open the message',
  openHint: 'This file holds an encrypted message for {to}. If nothing happens, press the button.',
  registerTitle: 'Choose your password',
  registerText: 'This is your first secure message for {to}. Choose a password; you need it for every secure message to this address.',
  passwordRules: 'At least 10 characters, at least three of: lower case, upper case, digits, other characters (or 16 characters of any kind); not your address.',
  password: 'Password',
  passwordAgain: 'Password again',
  register: 'Set password and open',
  loginTitle: 'Enter your password',
  loginText: 'A secure message for {to}.',
  login: 'Open',
  from: 'From',
  to: 'To',
  subject: 'Subject',
  date: 'Date',
  attachments: 'Attachments',
  download: 'Download',
  reply: 'Secure reply',
  send: 'Send reply',
  replySent: 'Your reply has been sent securely to {to}.',
  back: 'Back to the message',
  errorTitle: 'The message cannot be shown',
  mismatch: 'The two passwords differ.',
} as const;

const DE: Record<keyof typeof EN, string> = {
  mailSubject: 'Sichere Nachricht von {from}',
  mailIntro: '{from} hat Ihnen eine vertrauliche Nachricht gesendet. Sie steht im Anhang secure-message.html.',
  mailHow: 'Öffnen Sie den Anhang in Ihrem Webbrowser. Bei der ersten Nachricht wählen Sie ein Passwort; danach lesen Sie Ihre Nachrichten mit diesem Passwort.',
  mailWarn: 'Wir fragen nie per E-Mail nach Ihrem Passwort. Die Nachricht kann bis {expires} gelesen werden.',
  open: 'Nachricht öffnen',
  openHint: 'Diese Datei enthält eine verschlüsselte Nachricht für {to}. Falls nichts geschieht, drücken Sie die Schaltfläche.',
  registerTitle: 'Passwort wählen',
  registerText: 'Dies ist Ihre erste sichere Nachricht an {to}. Wählen Sie ein Passwort; Sie brauchen es für jede sichere Nachricht an diese Adresse.',
  passwordRules: 'Mindestens 10 Zeichen, davon mindestens drei Arten: Kleinbuchstaben, Großbuchstaben, Ziffern, andere Zeichen (oder 16 beliebige Zeichen); nicht Ihre Adresse.',
  password: 'Passwort',
  passwordAgain: 'Passwort wiederholen',
  register: 'Passwort setzen und öffnen',
  loginTitle: 'Passwort eingeben',
  loginText: 'Eine sichere Nachricht an {to}.',
  login: 'Öffnen',
  from: 'Von',
  to: 'An',
  subject: 'Betreff',
  date: 'Datum',
  attachments: 'Anhänge',
  download: 'Herunterladen',
  reply: 'Sichere Antwort',
  send: 'Antwort senden',
  replySent: 'Ihre Antwort wurde sicher an {to} gesendet.',
  back: 'Zurück zur Nachricht',
  errorTitle: 'Die Nachricht kann nicht angezeigt werden',
  mismatch: 'Die beiden Passwörter sind verschieden.',
};

export type TextKey = keyof typeof EN;
export type Texts = (key: TextKey, vars?: Record<string, string>) => string;

export function texts(lang: Language): Texts {
  const table: Record<TextKey, string> = lang === 'de' ? DE : EN;
  return (key, vars = {}) => table[key].replace(/\{(\w+)\}/g, (m: string, k: string) => vars[k] ?? m);
}

/** Minimal HTML escaping for text and attribute values (HTML Living Standard §13.1.2.3, §13.5). */
export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
