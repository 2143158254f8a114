export type Json =
  | string
  | number
  | boolean
  | null
  | { [key: string]: Json | undefined }
  | Json[]

export type Database = {
  // Allows to automatically instantiate createClient with right options
  // instead of createClient<Database, { PostgrestVersion: 'XX' }>(URL, KEY)
  __InternalSupabase: {
    PostgrestVersion: "12.0.2"
  }
  graphql_public: {
    Tables: {
      [_ in never]: never
    }
    Views: {
      [_ in never]: never
    }
    Functions: {
      [_ in never]: never
    }
    Enums: {
      [_ in never]: never
    }
    CompositeTypes: {
      [_ in never]: never
    }
  }
  public: {
    Tables: {
      calls: {
        Row: {
          alert_at: string
          answered_at: string | null
          assigned_executive_id: string | null
          biz_opaque_callback_data: string | null
          call_id: string
          contact_id: string
          conversation_id: string
          created_at: string
          direction: string
          duration_seconds: number | null
          end_status: string | null
          ended_at: string | null
          id: string
          outcome: string | null
          phone_number_id: string
          rejected: boolean
          started_at: string
          state: string
          updated_at: string
        }
        Insert: {
          alert_at: string
          answered_at?: string | null
          assigned_executive_id?: string | null
          biz_opaque_callback_data?: string | null
          call_id: string
          contact_id: string
          conversation_id: string
          created_at?: string
          direction: string
          duration_seconds?: number | null
          end_status?: string | null
          ended_at?: string | null
          id?: string
          outcome?: never
          phone_number_id: string
          rejected?: boolean
          started_at: string
          state: string
          updated_at?: string
        }
        Update: {
          alert_at?: string
          answered_at?: string | null
          assigned_executive_id?: string | null
          biz_opaque_callback_data?: string | null
          call_id?: string
          contact_id?: string
          conversation_id?: string
          created_at?: string
          direction?: string
          duration_seconds?: number | null
          end_status?: string | null
          ended_at?: string | null
          id?: string
          outcome?: never
          phone_number_id?: string
          rejected?: boolean
          started_at?: string
          state?: string
          updated_at?: string
        }
        Relationships: [
          {
            foreignKeyName: "calls_assigned_executive_id_fkey"
            columns: ["assigned_executive_id"]
            isOneToOne: false
            referencedRelation: "profiles"
            referencedColumns: ["id"]
          },
          {
            foreignKeyName: "calls_assigned_executive_id_fkey"
            columns: ["assigned_executive_id"]
            isOneToOne: false
            referencedRelation: "team_members"
            referencedColumns: ["id"]
          },
          {
            foreignKeyName: "calls_contact_id_fkey"
            columns: ["contact_id"]
            isOneToOne: false
            referencedRelation: "contacts"
            referencedColumns: ["id"]
          },
          {
            foreignKeyName: "calls_conversation_id_fkey"
            columns: ["conversation_id"]
            isOneToOne: false
            referencedRelation: "conversations"
            referencedColumns: ["id"]
          },
        ]
      }
      campaigns: {
        Row: {
          created_at: string
          created_by: string | null
          id: string
          name: string
          phone_number_id: string
          progress_at: string | null
          starts_at: string
          status: string
          team_id: string | null
          template_language: string
          template_name: string
          time_zone: string
          updated_at: string
          window_end_hour: number | null
          window_start_hour: number | null
        }
        Insert: {
          created_at?: string
          created_by?: string | null
          id?: string
          name: string
          phone_number_id: string
          progress_at?: string | null
          starts_at: string
          status?: string
          team_id?: string | null
          template_language: string
          template_name: string
          time_zone?: string
          updated_at?: string
          window_end_hour?: number | null
          window_start_hour?: number | null
        }
        Update: {
          created_at?: string
          created_by?: string | null
          id?: string
          name?: string
          phone_number_id?: string
          progress_at?: string | null
          starts_at?: string
          status?: string
          team_id?: string | null
          template_language?: string
          template_name?: string
          time_zone?: string
          updated_at?: string
          window_end_hour?: number | null
          window_start_hour?: number | null
        }
        Relationships: [
          {
            foreignKeyName: "campaigns_created_by_fkey"
            columns: ["created_by"]
            isOneToOne: false
            referencedRelation: "profiles"
            referencedColumns: ["id"]
          },
          {
            foreignKeyName: "campaigns_created_by_fkey"
            columns: ["created_by"]
            isOneToOne: false
            referencedRelation: "team_members"
            referencedColumns: ["id"]
          },
          {
            foreignKeyName: "campaigns_team_id_fkey"
            columns: ["team_id"]
            isOneToOne: false
            referencedRelation: "teams"
            referencedColumns: ["id"]
          },
        ]
      }
      contacts: {
        Row: {
          created_at: string
          id: string
          marketing_opt_out_source: string | null
          marketing_opted_out_at: string | null
          profile_name: string | null
          updated_at: string
          user_id: string | null
          username: string | null
          wa_id: string | null
        }
        Insert: {
          created_at?: string
          id?: string
          marketing_opt_out_source?: string | null
          marketing_opted_out_at?: string | null
          profile_name?: string | null
          updated_at?: string
          user_id?: string | null
          username?: string | null
          wa_id?: string | null
        }
        Update: {
          created_at?: string
          id?: string
          marketing_opt_out_source?: string | null
          marketing_opted_out_at?: string | null
          profile_name?: string | null
          updated_at?: string
          user_id?: string | null
          username?: string | null
          wa_id?: string | null
        }
        Relationships: []
      }
      conversations: {
        Row: {
          assigned_executive_id: string | null
          bot_last_activity_at: string | null
          bot_paused_by: string | null
          bot_paused_until: string | null
          closed_at: string | null
          contact_id: string
          created_at: string
          handoff_reason: string | null
          handoff_requested_at: string | null
          id: string
          last_inbound_at: string | null
          last_message_at: string | null
          phone_number_id: string
          routed_via: string | null
          status: string
          team_id: string | null
          updated_at: string
        }
        Insert: {
          assigned_executive_id?: string | null
          bot_last_activity_at?: string | null
          bot_paused_by?: string | null
          bot_paused_until?: string | null
          closed_at?: string | null
          contact_id: string
          created_at?: string
          handoff_reason?: string | null
          handoff_requested_at?: string | null
          id?: string
          last_inbound_at?: string | null
          last_message_at?: string | null
          phone_number_id: string
          routed_via?: string | null
          status?: string
          team_id?: string | null
          updated_at?: string
        }
        Update: {
          assigned_executive_id?: string | null
          bot_last_activity_at?: string | null
          bot_paused_by?: string | null
          bot_paused_until?: string | null
          closed_at?: string | null
          contact_id?: string
          created_at?: string
          handoff_reason?: string | null
          handoff_requested_at?: string | null
          id?: string
          last_inbound_at?: string | null
          last_message_at?: string | null
          phone_number_id?: string
          routed_via?: string | null
          status?: string
          team_id?: string | null
          updated_at?: string
        }
        Relationships: [
          {
            foreignKeyName: "conversations_bot_paused_by_fkey"
            columns: ["bot_paused_by"]
            isOneToOne: false
            referencedRelation: "profiles"
            referencedColumns: ["id"]
          },
          {
            foreignKeyName: "conversations_bot_paused_by_fkey"
            columns: ["bot_paused_by"]
            isOneToOne: false
            referencedRelation: "team_members"
            referencedColumns: ["id"]
          },
          {
            foreignKeyName: "conversations_contact_id_fkey"
            columns: ["contact_id"]
            isOneToOne: false
            referencedRelation: "contacts"
            referencedColumns: ["id"]
          },
        ]
      }
      message_edits: {
        Row: {
          edit_wamid: string
          edited_at: string
          id: number
          message_id: string
          previous_body: NonNullable<Json>
          previous_text: string | null
        }
        Insert: {
          edit_wamid: string
          edited_at: string
          id?: never
          message_id: string
          previous_body: NonNullable<Json>
          previous_text?: string | null
        }
        Update: {
          edit_wamid?: string
          edited_at?: string
          id?: never
          message_id?: string
          previous_body?: NonNullable<Json>
          previous_text?: string | null
        }
        Relationships: [
          {
            foreignKeyName: "message_edits_message_id_fkey"
            columns: ["message_id"]
            isOneToOne: false
            referencedRelation: "messages"
            referencedColumns: ["id"]
          },
        ]
      }
      message_reactions: {
        Row: {
          conversation_id: string
          emoji: string | null
          message_wamid: string
          reacted_at: string
          reaction_wamid: string | null
          reactor: string
        }
        Insert: {
          conversation_id: string
          emoji?: string | null
          message_wamid: string
          reacted_at: string
          reaction_wamid?: string | null
          reactor: string
        }
        Update: {
          conversation_id?: string
          emoji?: string | null
          message_wamid?: string
          reacted_at?: string
          reaction_wamid?: string | null
          reactor?: string
        }
        Relationships: [
          {
            foreignKeyName: "message_reactions_conversation_id_fkey"
            columns: ["conversation_id"]
            isOneToOne: false
            referencedRelation: "conversations"
            referencedColumns: ["id"]
          },
        ]
      }
      messages: {
        Row: {
          body: NonNullable<Json>
          content_text: string | null
          context_wamid: string | null
          conversation_id: string
          direction: string
          edited_at: string | null
          error: Json | null
          id: string
          idempotency_key: string | null
          media_error: string | null
          media_mime_type: string | null
          media_path: string | null
          media_sha256: string | null
          media_size: number | null
          media_state: string | null
          media_transcript: string | null
          origin: string | null
          read_at: string | null
          read_by: string | null
          read_receipt_sent_at: string | null
          received_at: string
          revoked_at: string | null
          sent_at: string
          sent_by: string | null
          status: string | null
          status_at: string | null
          type: string
          wamid: string | null
        }
        Insert: {
          body: NonNullable<Json>
          content_text?: string | null
          context_wamid?: string | null
          conversation_id: string
          direction: string
          edited_at?: string | null
          error?: Json | null
          id?: string
          idempotency_key?: string | null
          media_error?: string | null
          media_mime_type?: string | null
          media_path?: string | null
          media_sha256?: string | null
          media_size?: number | null
          media_state?: string | null
          media_transcript?: string | null
          origin?: string | null
          read_at?: string | null
          read_by?: string | null
          read_receipt_sent_at?: string | null
          received_at?: string
          revoked_at?: string | null
          sent_at: string
          sent_by?: string | null
          status?: string | null
          status_at?: string | null
          type: string
          wamid?: string | null
        }
        Update: {
          body?: NonNullable<Json>
          content_text?: string | null
          context_wamid?: string | null
          conversation_id?: string
          direction?: string
          edited_at?: string | null
          error?: Json | null
          id?: string
          idempotency_key?: string | null
          media_error?: string | null
          media_mime_type?: string | null
          media_path?: string | null
          media_sha256?: string | null
          media_size?: number | null
          media_state?: string | null
          media_transcript?: string | null
          origin?: string | null
          read_at?: string | null
          read_by?: string | null
          read_receipt_sent_at?: string | null
          received_at?: string
          revoked_at?: string | null
          sent_at?: string
          sent_by?: string | null
          status?: string | null
          status_at?: string | null
          type?: string
          wamid?: string | null
        }
        Relationships: [
          {
            foreignKeyName: "messages_conversation_id_fkey"
            columns: ["conversation_id"]
            isOneToOne: false
            referencedRelation: "conversations"
            referencedColumns: ["id"]
          },
          {
            foreignKeyName: "messages_read_by_fkey"
            columns: ["read_by"]
            isOneToOne: false
            referencedRelation: "profiles"
            referencedColumns: ["id"]
          },
          {
            foreignKeyName: "messages_read_by_fkey"
            columns: ["read_by"]
            isOneToOne: false
            referencedRelation: "team_members"
            referencedColumns: ["id"]
          },
          {
            foreignKeyName: "messages_sent_by_fkey"
            columns: ["sent_by"]
            isOneToOne: false
            referencedRelation: "profiles"
            referencedColumns: ["id"]
          },
          {
            foreignKeyName: "messages_sent_by_fkey"
            columns: ["sent_by"]
            isOneToOne: false
            referencedRelation: "team_members"
            referencedColumns: ["id"]
          },
        ]
      }
      profiles: {
        Row: {
          active: boolean
          backup_id: string | null
          created_at: string
          email: string | null
          full_name: string | null
          id: string
          original_phone: string | null
          phone: string | null
          role: string
          team_id: string | null
          updated_at: string
        }
        Insert: {
          active?: boolean
          backup_id?: string | null
          created_at?: string
          email?: string | null
          full_name?: string | null
          id: string
          original_phone?: string | null
          phone?: string | null
          role?: string
          team_id?: string | null
          updated_at?: string
        }
        Update: {
          active?: boolean
          backup_id?: string | null
          created_at?: string
          email?: string | null
          full_name?: string | null
          id?: string
          original_phone?: string | null
          phone?: string | null
          role?: string
          team_id?: string | null
          updated_at?: string
        }
        Relationships: [
          {
            foreignKeyName: "profiles_backup_id_fkey"
            columns: ["backup_id"]
            isOneToOne: false
            referencedRelation: "profiles"
            referencedColumns: ["id"]
          },
          {
            foreignKeyName: "profiles_backup_id_fkey"
            columns: ["backup_id"]
            isOneToOne: false
            referencedRelation: "team_members"
            referencedColumns: ["id"]
          },
          {
            foreignKeyName: "profiles_team_id_fkey"
            columns: ["team_id"]
            isOneToOne: false
            referencedRelation: "teams"
            referencedColumns: ["id"]
          },
        ]
      }
      prospects: {
        Row: {
          contact_id: string | null
          created_at: string
          executive_id: string | null
          id: string
          name: string | null
          phone: string | null
          team_id: string | null
        }
        Insert: {
          contact_id?: string | null
          created_at?: string
          executive_id?: string | null
          id?: string
          name?: string | null
          phone?: string | null
          team_id?: string | null
        }
        Update: {
          contact_id?: string | null
          created_at?: string
          executive_id?: string | null
          id?: string
          name?: string | null
          phone?: string | null
          team_id?: string | null
        }
        Relationships: [
          {
            foreignKeyName: "prospects_contact_id_fkey"
            columns: ["contact_id"]
            isOneToOne: false
            referencedRelation: "contacts"
            referencedColumns: ["id"]
          },
          {
            foreignKeyName: "prospects_executive_id_fkey"
            columns: ["executive_id"]
            isOneToOne: false
            referencedRelation: "profiles"
            referencedColumns: ["id"]
          },
          {
            foreignKeyName: "prospects_executive_id_fkey"
            columns: ["executive_id"]
            isOneToOne: false
            referencedRelation: "team_members"
            referencedColumns: ["id"]
          },
          {
            foreignKeyName: "prospects_team_id_fkey"
            columns: ["team_id"]
            isOneToOne: false
            referencedRelation: "teams"
            referencedColumns: ["id"]
          },
        ]
      }
      teams: {
        Row: {
          created_at: string
          id: string
          name: string
        }
        Insert: {
          created_at?: string
          id?: string
          name: string
        }
        Update: {
          created_at?: string
          id?: string
          name?: string
        }
        Relationships: []
      }
    }
    Views: {
      team_members: {
        Row: {
          active: boolean | null
          backup_id: string | null
          email: string | null
          full_name: string | null
          has_backup: boolean | null
          id: string | null
          phone: string | null
          role: string | null
          team_id: string | null
          team_name: string | null
        }
        Relationships: [
          {
            foreignKeyName: "profiles_backup_id_fkey"
            columns: ["backup_id"]
            isOneToOne: false
            referencedRelation: "profiles"
            referencedColumns: ["id"]
          },
          {
            foreignKeyName: "profiles_backup_id_fkey"
            columns: ["backup_id"]
            isOneToOne: false
            referencedRelation: "team_members"
            referencedColumns: ["id"]
          },
          {
            foreignKeyName: "profiles_team_id_fkey"
            columns: ["team_id"]
            isOneToOne: false
            referencedRelation: "teams"
            referencedColumns: ["id"]
          },
        ]
      }
    }
    Functions: {
      answer_call: {
        Args: { call_id: string }
        Returns: {
          alert_at: string
          answered_at: string | null
          assigned_executive_id: string | null
          biz_opaque_callback_data: string | null
          call_id: string
          contact_id: string
          conversation_id: string
          created_at: string
          direction: string
          duration_seconds: number | null
          end_status: string | null
          ended_at: string | null
          id: string
          outcome: string | null
          phone_number_id: string
          rejected: boolean
          started_at: string
          state: string
          updated_at: string
        }
        SetofOptions: {
          from: "*"
          to: "calls"
          isOneToOne: true
          isSetofReturn: false
        }
      }
      assign_conversation: {
        Args: { conversation_id: string; executive_id: string }
        Returns: Json
      }
      call_metrics: { Args: { p_now?: string }; Returns: Json }
      campaign_progress: { Args: { campaign_id: string }; Returns: Json }
      claim_conversation: { Args: { conversation_id: string }; Returns: Json }
      close_conversation: { Args: { conversation_id: string }; Returns: Json }
      create_campaign: {
        Args: {
          components?: Json
          name: string
          phone_number_id: string
          prospect_ids?: string[]
          recipients?: Json
          send_window?: Json
          starts_at?: string
          team_id?: string
          template_language: string
          template_name: string
        }
        Returns: string
      }
      delete_routing_rule: {
        Args: { phone_number_id: string }
        Returns: undefined
      }
      get_backup_info: {
        Args: { user_ids: string[] }
        Returns: {
          backup_id: string
          backup_name: string
          backup_phone: string
          has_backup: boolean
          original_phone: string
          phone: string
          user_id: string
        }[]
      }
      list_conversations: {
        Args: {
          p_cursor?: string
          p_filter?: string
          p_limit?: number
          p_search?: string
        }
        Returns: {
          assigned_executive_id: string
          assigned_executive_name: string
          bot_paused: boolean
          bot_paused_until: string
          contact_id: string
          contact_name: string
          contact_number: string
          conversation_id: string
          cursor: string
          handled_as_backup: boolean
          in_queue: boolean
          last_message_at: string
          last_message_direction: string
          last_message_text: string
          status: string
          team_id: string
          unread_count: number
          window_closes_at: string
        }[]
      }
      list_templates: {
        Args: {
          p_language?: string
          p_phone_number_id?: string
          p_status?: string
        }
        Returns: {
          category: string
          components: Json
          language: string
          name: string
          parameter_format: string
          parameters: Json
          quality: string
          status: string
          template_id: string
          waba_id: string
        }[]
      }
      live_calls: {
        Args: { p_now?: string }
        Returns: {
          alert_at: string
          answered_at: string
          assigned_executive_id: string
          call_id: string
          contact_id: string
          contact_name: string
          conversation_id: string
          direction: string
          id: string
          phone_number_id: string
          started_at: string
          state: string
          unanswered_too_long: boolean
          waiting_seconds: number
        }[]
      }
      ops_metrics: { Args: Record<PropertyKey, never>; Returns: Json }
      ops_readiness: { Args: Record<PropertyKey, never>; Returns: Json }
      pause_bot: {
        Args: { conversation_id: string; until?: string }
        Returns: string
      }
      prospects_handled_as_backup: {
        Args: { prospect_ids: string[] }
        Returns: {
          executive_id: string
          handled_as_backup: boolean
          prospect_id: string
        }[]
      }
      release_conversation: { Args: { conversation_id: string }; Returns: Json }
      reopen_conversation: { Args: { conversation_id: string }; Returns: Json }
      resume_bot: { Args: { conversation_id: string }; Returns: undefined }
      set_availability: {
        Args: { away: boolean; executive_id: string }
        Returns: Json
      }
      set_campaign_status: {
        Args: { action: string; campaign_id: string }
        Returns: string
      }
      set_executive_capacity: {
        Args: { capacity: number; executive_id: string }
        Returns: Json
      }
      set_marketing_opt_out: {
        Args: { conversation_id: string; opted_out: boolean }
        Returns: string
      }
      set_routing_rule: {
        Args: {
          capacity?: number
          phone_number_id: string
          strategy: string
          team_id: string
        }
        Returns: Json
      }
    }
    Enums: {
      [_ in never]: never
    }
    CompositeTypes: {
      [_ in never]: never
    }
  }
}

type DatabaseWithoutInternals = Omit<Database, "__InternalSupabase">

type DefaultSchema = DatabaseWithoutInternals[Extract<keyof Database, "public">]

export type Tables<
  DefaultSchemaTableNameOrOptions extends
    | keyof (DefaultSchema["Tables"] & DefaultSchema["Views"])
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends (DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof (DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"] &
        DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Views"])
    : never) = never,
> = DefaultSchemaTableNameOrOptions extends {
  schema: keyof DatabaseWithoutInternals
}
  ? (DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"] &
      DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Views"])[TableName] extends {
      Row: infer R
    }
    ? R
    : never
  : DefaultSchemaTableNameOrOptions extends keyof (DefaultSchema["Tables"] &
        DefaultSchema["Views"])
    ? (DefaultSchema["Tables"] &
        DefaultSchema["Views"])[DefaultSchemaTableNameOrOptions] extends {
        Row: infer R
      }
      ? R
      : never
    : never

export type TablesInsert<
  DefaultSchemaTableNameOrOptions extends
    | keyof DefaultSchema["Tables"]
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends (DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"]
    : never) = never,
> = DefaultSchemaTableNameOrOptions extends {
  schema: keyof DatabaseWithoutInternals
}
  ? DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"][TableName] extends {
      Insert: infer I
    }
    ? I
    : never
  : DefaultSchemaTableNameOrOptions extends keyof DefaultSchema["Tables"]
    ? DefaultSchema["Tables"][DefaultSchemaTableNameOrOptions] extends {
        Insert: infer I
      }
      ? I
      : never
    : never

export type TablesUpdate<
  DefaultSchemaTableNameOrOptions extends
    | keyof DefaultSchema["Tables"]
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends (DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"]
    : never) = never,
> = DefaultSchemaTableNameOrOptions extends {
  schema: keyof DatabaseWithoutInternals
}
  ? DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"][TableName] extends {
      Update: infer U
    }
    ? U
    : never
  : DefaultSchemaTableNameOrOptions extends keyof DefaultSchema["Tables"]
    ? DefaultSchema["Tables"][DefaultSchemaTableNameOrOptions] extends {
        Update: infer U
      }
      ? U
      : never
    : never

export type Enums<
  DefaultSchemaEnumNameOrOptions extends
    | keyof DefaultSchema["Enums"]
    | { schema: keyof DatabaseWithoutInternals },
  EnumName extends (DefaultSchemaEnumNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[DefaultSchemaEnumNameOrOptions["schema"]]["Enums"]
    : never) = never,
> = DefaultSchemaEnumNameOrOptions extends {
  schema: keyof DatabaseWithoutInternals
}
  ? DatabaseWithoutInternals[DefaultSchemaEnumNameOrOptions["schema"]]["Enums"][EnumName]
  : DefaultSchemaEnumNameOrOptions extends keyof DefaultSchema["Enums"]
    ? DefaultSchema["Enums"][DefaultSchemaEnumNameOrOptions]
    : never

export type CompositeTypes<
  PublicCompositeTypeNameOrOptions extends
    | keyof DefaultSchema["CompositeTypes"]
    | { schema: keyof DatabaseWithoutInternals },
  CompositeTypeName extends (PublicCompositeTypeNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[PublicCompositeTypeNameOrOptions["schema"]]["CompositeTypes"]
    : never) = never,
> = PublicCompositeTypeNameOrOptions extends {
  schema: keyof DatabaseWithoutInternals
}
  ? DatabaseWithoutInternals[PublicCompositeTypeNameOrOptions["schema"]]["CompositeTypes"][CompositeTypeName]
  : PublicCompositeTypeNameOrOptions extends keyof DefaultSchema["CompositeTypes"]
    ? DefaultSchema["CompositeTypes"][PublicCompositeTypeNameOrOptions]
    : never

export const Constants = {
  graphql_public: {
    Enums: {},
  },
  public: {
    Enums: {},
  },
} as const

