"""What users asked and what became of it: analytics and the knowledge-gap report over chat.QuestionLog."""
